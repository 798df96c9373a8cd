"""Pruning on the IR: the method, its schedule, one pruning step, and the sweep experiment."""
