"""Grading generated scenes by reading them back: the prompt against what a captioner says the image shows.

Both texts are parsed by the shapes grammar (vision.shapes) into the axis and the (colour, shape) of each
object in reading order; the scores say how often the image got the whole prompt, and each attribute, right.
"""

from vision.shapes import COLOURS, RELATIONS, SHAPES

_AXES = {relation: axis for axis, relation in RELATIONS.items()}


def parse_scene(text: str) -> tuple[str | None, list[tuple[str, str]]]:
    """'a red circle left of a blue square' -> ('row', [('red', 'circle'), ('blue', 'square')]). Words the
    grammar does not know are skipped; a single object has axis None."""
    words = text.lower().split()
    axis, objects, colour = None, [], None
    joined = " ".join(words)
    for relation, name in _AXES.items():
        if f" {relation} " in f" {joined} ":
            axis = name
    for word in words:
        if word in COLOURS:
            colour = word
        elif word in SHAPES and colour is not None:
            objects.append((colour, word))
            colour = None
    return axis, objects


def _percent(hits: int, total: int) -> float | None:
    return None if total == 0 else 100.0 * hits / total


def readback_scores(prompts: list[str], readbacks: list[str]) -> dict:
    """Scores (percent) of read-back captions against their prompts:

    exact: the read-back equals the prompt; count: as many objects; colour, shape: per prompt object, the
    read-back's object at the same place has that colour / shape; relation: scenes of 2+ objects read along
    the same axis; by_count: exact per number of objects in the prompt; count_of: prompts scored.
    """
    hits = {"exact": 0, "count": 0, "colour": 0, "shape": 0, "relation": 0}
    objects = multi = 0
    by_count: dict[int, list[int]] = {}
    for prompt, said in zip(prompts, readbacks):
        axis, want = parse_scene(prompt)
        got_axis, got = parse_scene(said)
        exact = " ".join(prompt.lower().split()) == " ".join(said.lower().split())
        hits["exact"] += exact
        hits["count"] += len(got) == len(want)
        for i, (colour, shape) in enumerate(want):
            hits["colour"] += i < len(got) and got[i][0] == colour
            hits["shape"] += i < len(got) and got[i][1] == shape
        objects += len(want)
        if len(want) > 1:
            multi += 1
            hits["relation"] += got_axis == axis
        by_count.setdefault(len(want), []).append(exact)
    n = len(prompts)
    return {"exact": _percent(hits["exact"], n), "count": _percent(hits["count"], n),
            "colour": _percent(hits["colour"], objects), "shape": _percent(hits["shape"], objects),
            "relation": _percent(hits["relation"], multi),
            "by_count": {k: _percent(sum(v), len(v)) for k, v in sorted(by_count.items())}, "count_of": n}
