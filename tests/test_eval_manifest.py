"""Evaluation manifests: the examples load; bad ones fail in one line naming the item."""

import json
from pathlib import Path

import pytest

from juno.cli import main
from juno.errors import JunoError
from juno.eval.manifest import load_manifest

ROOT = Path(__file__).resolve().parent.parent
JFK = "${JUNO_DATA}/audio/jfk.flac"


def _write(path: Path, items: list) -> Path:
    path.write_text("".join(json.dumps(i) + "\n" for i in items), encoding="utf-8")
    return path


def test_example_manifests_load(data_dir):
    speech = load_manifest(ROOT / "manifests" / "speech-en.jsonl")
    assert [i.kind for i in speech] == ["speech"] * 6
    assert speech[0].audio == data_dir / "audio" / "jfk.flac"
    assert all(i.transcript and not i.translations for i in speech)
    (jfk,) = load_manifest(ROOT / "manifests" / "jfk-fr.jsonl")
    assert set(jfk.translations) == {"fr"}
    flores = load_manifest(ROOT / "manifests" / "flores-dev-100.jsonl")
    assert len(flores) == 100 and all(i.kind == "text" for i in flores)
    english = (data_dir / "flores200-dev" / "eng_Latn.dev").read_text().splitlines()
    german = (data_dir / "flores200-dev" / "deu_Latn.dev").read_text().splitlines()
    assert flores[99].source == english[99].strip()
    assert flores[99].translations["de"] == german[99].strip()


def test_paths_are_relative_to_the_manifest_and_json_lists_work(tmp_path, data_dir):
    (tmp_path / "clips").mkdir()
    clip = tmp_path / "clips" / "jfk.flac"
    clip.write_bytes((data_dir / "audio" / "jfk.flac").read_bytes())
    manifest = tmp_path / "set.json"
    items = [
        {"audio": "clips/jfk.flac", "lang": "en", "transcript": "ask not"},
        {"id": "t", "lang": "en", "source": "Hello.", "translations": {"de": "Hallo."}},
    ]
    manifest.write_text(json.dumps({"items": items}))
    speech, text = load_manifest(manifest)
    assert (speech.id, speech.audio, speech.kind) == ("jfk", clip, "speech")
    assert (text.kind, text.translations) == ("text", {"de": "Hallo."})


BAD = [
    # (manifest lines, words the error must contain)
    (
        [{"id": "gone", "lang": "en", "audio": "nowhere.flac", "transcript": "x"}],
        ["item 'gone'", "nowhere.flac", "not found"],
    ),
    (
        [{"id": "s1", "lang": "en", "source": "Hi.", "translations": {"xx": "Salut."}}],
        ["item 's1'", "unknown language code 'xx'", "translations"],
    ),
    (
        [{"id": "s2", "lang": "english", "source": "Hi."}],
        ["item 's2'", "unknown language code 'english'"],
    ),
    (
        [{"id": "s3", "lang": "en", "source": "Hi.", "translation": {"fr": "Salut."}}],
        ["item 's3'", "unknown field 'translation'", "did you mean 'translations'"],
    ),
    (
        [{"id": "s4", "lang": "en", "source": "Hi.", "audio": JFK, "transcript": "x"}],
        ["item 's4'", "either 'audio'"],
    ),
    (
        [{"id": "s5", "lang": "en", "audio": JFK}],
        ["item 's5'", "'transcript'"],
    ),
    (
        [{"id": "s6", "lang": "en", "source": "a"}, {"id": "s6", "lang": "en", "source": "b"}],
        [":2: item 's6'", "id used twice"],
    ),
    (
        [{"id": "s7", "lang": "en", "source": "Hi.", "translations": {"fr": ""}}],
        ["item 's7'", "translations['fr']"],
    ),
]


@pytest.mark.parametrize("lines, words", BAD)
def test_bad_items_fail_naming_the_item(tmp_path, lines, words):
    manifest = _write(tmp_path / "bad.jsonl", lines)
    with pytest.raises(JunoError) as e:
        load_manifest(manifest)
    message = str(e.value)
    assert "\n" not in message
    for word in words:
        assert word in message


def test_malformed_json_names_the_line(tmp_path):
    manifest = tmp_path / "broken.jsonl"
    manifest.write_text('{"id": "a", "lang": "en", "source": "ok"}\n{"id": "b", "lang": \n')
    with pytest.raises(JunoError, match=r"broken\.jsonl:2: not valid JSON"):
        load_manifest(manifest)
    whole = tmp_path / "broken.json"
    whole.write_text('[{"id": "a", "lang": "en", "source": "ok"},]')
    with pytest.raises(JunoError, match=r"broken\.json: not valid JSON .*line 1"):
        load_manifest(whole)


def test_missing_and_empty_manifests(tmp_path):
    with pytest.raises(JunoError, match="cannot read manifest"):
        load_manifest(tmp_path / "none.jsonl")
    with pytest.raises(JunoError, match="no items"):
        load_manifest(_write(tmp_path / "empty.jsonl", []))
    (tmp_path / "scalar.json").write_text("3")
    with pytest.raises(JunoError, match="expected a list of items"):
        load_manifest(tmp_path / "scalar.json")


def test_cli_prints_one_line_and_exits_2(tmp_path, capsys):
    manifest = _write(
        tmp_path / "m.jsonl",
        [{"id": "talk-1", "lang": "en", "audio": "talk-1.wav", "transcript": "x"}],
    )
    assert main(["eval", str(manifest), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("juno: error: ") and "item 'talk-1'" in err
    assert len(err.splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_cli_rejects_bad_options_in_one_line(tmp_path, capsys):
    manifest = _write(tmp_path / "m.jsonl", [{"lang": "en", "source": "Hi."}])
    for option in (["--wait-k", "1,x"], ["--wait-k", "0"], ["--modes", "fast"], ["--target", "zz"]):
        assert main(["eval", str(manifest), *option]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("juno: error: ") and len(err.splitlines()) == 1
