"""The control layer: the only one that imports the store, the bus and the kernel together.

`plane.ControlPlane` assembles it; the services (submit, dispatch, approvals, outputs,
incidents, the policy installer, the built-in workers) take domain values, never HTTP models.
"""
