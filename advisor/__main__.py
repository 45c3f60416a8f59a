"""`python -m advisor ...`: the advisor's command line (contract in shared/design.md).

    recommend --profile PROFILE.json [--json]
    chat [--json]                 user messages on stdin, one a line
    search QUERY [-k N] [--json]  the knowledge base
    runs import|list|rate|export  the run log

Bad input: one line on stderr and a non-zero exit, never a traceback.
"""
from __future__ import annotations

import argparse
import json
import sys


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2 (argparse's own code)
        self.exit(2, f"{self.prog}: error: {message}\n")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m advisor", description="Fine-tune advisor: interview, recommendation, knowledge, run log.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    r = sub.add_parser("recommend", help="recommend a configuration for a profile file")
    r.add_argument("--profile", required=True, help="profile JSON (keys of the design's Profile; null = unknown)")
    r.add_argument("--json", action="store_true", help="print the Recommendation as JSON")
    c = sub.add_parser("chat", help="play user messages from stdin (one a line) through the interview")
    c.add_argument("--json", action="store_true", help="print {profile, recommendation, transcript} as JSON")
    s = sub.add_parser("search", help="search the knowledge base")
    s.add_argument("query")
    s.add_argument("-k", type=int, default=3)
    s.add_argument("--json", action="store_true")
    sub.add_parser("runs", help="the run log: import | list | rate | export (see `runs -h`)", add_help=False)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["runs"]:
        from .runlog.cli import runs_cli
        return runs_cli(argv[1:])
    args = _parser().parse_args(argv)
    try:
        if args.command == "recommend":
            return _recommend(args)
        if args.command == "chat":
            return _chat(args)
        return _search(args)
    except (ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1


def _recommend(args) -> int:
    from .learning.log_learner import learner_for_log
    from .profile import Profile
    from .recommendation.recommend import recommend
    from .recommendation.render import recommendation_text

    profile = Profile.load(args.profile)
    learner, note = learner_for_log()  # the run log ($FTA_RUNLOG), when it has scored runs
    if note:
        print(f"note: {note}", file=sys.stderr)
    rec = recommend(profile, learner=learner).to_dict()
    print(json.dumps(rec, indent=2) if args.json else recommendation_text(rec))
    return 0


def _chat(args) -> int:
    from .chat import play

    messages = [line.rstrip("\n") for line in sys.stdin]
    result = play(messages)
    if args.json:
        print(json.dumps(result, indent=2, ensure_ascii=False))
    else:
        for m in result["transcript"]:
            print(f"{m['role']}: {m['content']}\n")
    return 0


def _search(args) -> int:
    from .chat import knowledge_retriever

    retriever = knowledge_retriever()
    hits = retriever.search(args.query, k=max(1, args.k))
    if args.json:
        print(json.dumps({"backend": retriever.backend, "note": retriever.note,
                          "hits": [{"card": h.card_id, "title": h.title, "score": round(h.score, 4),
                                    "snippet": h.snippet, "sources": list(h.sources)} for h in hits]}, indent=2))
    else:
        if retriever.backend != "sentence-transformers":
            print(f"({retriever.note})")
        for h in hits:
            print(f"[{h.card_id}] {h.title} ({h.score:.2f})\n  {h.snippet}\n  sources: {'; '.join(h.sources)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
