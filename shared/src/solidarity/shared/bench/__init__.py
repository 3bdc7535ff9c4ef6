"""`solidarity bench`: a multi-school burst on the embedded stack, measured against the machine's
own limits (broker, PostgreSQL, SMTP, a bare pipeline) taken in the same run.

`runner.run_bench(options)` is the whole benchmark; the modules are its parts: `stack` (the
local stack in a fresh folder, extra instances, profiling), `raw` (the raw limits), `workload`
(who registers for what), `ledger` (what was sent and what came back), `observe` (the outcome
reader, the mail folder, memory), `phases` (burst, fan-out, scaling), `report` (table, JSON,
markdown, targets) and `png` (the chart, drawn without any plotting library).
"""
