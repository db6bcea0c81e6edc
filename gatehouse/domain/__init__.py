"""Pure values and lifecycles: ids and clocks, jobs, identities, approvals and their tokens,
the requests the edges hand to the control layer (`requests`), decision records,
containments, and the transition tables of jobs and approvals.

The domain imports only the standard library, the pure core (`gatehouse.policy`) and
`gatehouse.crypto`'s canonical JSON and signatures; every other layer imports it.
"""
