"""The checkers (Jepsen's word): the recorded history in, verdicts out.

history (the timeline read per listener and per window), measures (SLIs, each defined per
listener first; registered with the language by name), verdicts (pass, fail, or unknown when
there is no data or the instrument's own error could decide). Nothing here talks to the stack,
so a journal on disk can be judged again.
"""
