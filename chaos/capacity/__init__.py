"""Capacity: sweep the offered load (listeners, join rate) step by step until a stated SLO breaks;
find the knee and the breakpoint, name the resource that bound it, state the headroom at a target."""
