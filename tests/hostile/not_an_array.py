"""Returns a dict of arbitrary objects, hoping the parent pickles or evaluates it.
Contained: the runtime refuses anything that is not a numeric array (contract error)."""

EXPECT = "invalid"
MATCH = "unusable value"


def run(ctx):
    return {"predictions": object(), "code": "__import__('os').system('id')"}
