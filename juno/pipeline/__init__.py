"""The live pipeline's plumbing: messages, ZeroMQ sockets, the stage loop, the supervisor."""
