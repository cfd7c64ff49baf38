"""The lab: experiments and pictures around the core (memory span, gradient flow, plots, the synthetic
demo task, the speed benchmark). They use the core through its public names only."""
