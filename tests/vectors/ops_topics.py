try:
    from luciole.protocols.topics import Topics
except ImportError:
    from protocols.topics import Topics


def _build(case):
    return Topics(case["site"], *case.get("prefix", [])).build(case["name"], *case["ids"])


def _parse(case):
    name, ids = Topics(case["site"], *case.get("prefix", [])).parse(case["topic"])
    return [name, ids]


OPS = {"build": _build, "parse": _parse}
