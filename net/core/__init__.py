"""The core floor: reading a config into specs, and the Net that runs them.

    yaml     line-numbered safe YAML, `line_of`, `suggest`
    spec     the validated config: NetSpec, GateSpec, DataSpec, SolverConfig, ...
    config   the one parser of a config's three sections (net, data, solver)
    plugins  importing the modules a config names under `plugins:`
    graph    who produces and consumes each blob; Kahn's order; cycles
    runner   the forward and backward loops (the only place gradients are summed)
    fillers  Caffe's parameter initialisers
    net      the Net: gates, parameters, shapes, forward/backward
    hooks    what watches a pass: NaN checks, blob statistics, per-gate clocks
    state    weights, random states and buffers, captured and put back
    text     the one table printer

It imports `gates` and `net.errors` only; nothing here knows about training, files of weights,
tools or scripts.
"""
