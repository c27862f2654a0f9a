"""Before the live phases: leftovers of earlier runs swept, the stack found, every fault built,
and the stack brought up (or a running one reused).

A stack this run starts goes into the ledger before it is started, so it is taken down on every
exit path, even after a SIGKILL (by the next run, whose sweep comes first here, or `deadair sweep`).
"""

from __future__ import annotations

import time
from typing import cast

from chaos.faults.base import Fault, make_fault
from chaos.faults.ledger import describe_sweep, sweep
from chaos.runner.context import RunContext
from chaos.stack.compose import Stack
from chaos.stack.definition import find_stack


def bring_up_stack(ctx: RunContext) -> tuple[Stack, dict[str, Fault]]:
    """The stack under test, up and healthy, and the faults of the plan (built before anything
    starts, so that a bad parameter stops the run first)."""
    experiment, opt = ctx.exp, ctx.opt
    for led, rep in sweep():
        ctx.say(f"deadair: {describe_sweep(led.run_id, rep)}")
    stack = Stack(find_stack(experiment.stack, near=experiment.path.resolve().parent), opt.project)
    faults = build_faults(ctx, stack)
    ctx.say(f"deadair: {experiment.title}")
    if stack.is_running():
        stack.create_links(deadline=time.monotonic() + 10)
        stack.wait_healthy(deadline=time.monotonic() + 30)
        ctx.say(f"  stack {stack.project} already up (reused)")
    else:
        ctx.stack_started = True
        if not opt.keep_stack:  # in the ledger: taken down on every exit path, even after SIGKILL
            ctx.ledger.intend(
                f"stack {stack.project}",
                {
                    "action": "stack.down",
                    "project": stack.project,
                    "compose_file": str(stack.definition.compose_file),
                },
            )
        ctx.timings["stack_up"] = stack.up()
        ctx.say(f"  stack {stack.project} up in {ctx.timings['stack_up']:.1f}s")
    return stack, faults


def build_faults(ctx: RunContext, stack: Stack) -> dict[str, Fault]:
    """One fault per fault occurrence of the plan, by occurrence key, named after this run."""
    token = ctx.ledger.run_id[-6:]
    return {
        o.key: make_fault(
            stack,
            cast(str, o.step.fault),  # a fault step names its fault
            o.target,
            o.step.raw_params,
            f"{token}_{o.step.index}_{o.n}",
            o.duration,
        )
        for o in ctx.plan
        if o.step.kind == "fault"
    }
