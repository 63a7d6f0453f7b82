"""The training harness: tasks, encoders, caches, the idea runtime, isolation and the evaluator.

Kept empty on purpose: the idea process imports ``sandbox.runtime`` and must not pull in
anything that can read gold labels.
"""
