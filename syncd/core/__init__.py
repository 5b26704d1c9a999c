"""The pure core: paths and names, the model of both sides, the planner. No I/O."""
