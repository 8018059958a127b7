"""``juno eval``: live speech translation measured on a manifest, with its offline ceiling.

- manifest: the items (speech or text, references) read from JSON or JSONL;
- timeline: the cascade on a simulated clock (committed words into the translator);
- score: per-item latency and corpus quality (SimulEval, sacrebleu, WER);
- run: each item through the streaming cores and the offline cascade;
- report: figures from the item records, JSON and Markdown; plot: the PNG.
"""
