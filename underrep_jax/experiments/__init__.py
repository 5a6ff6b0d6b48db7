"""Experiments: declared sets of stages (train, align, evaluate, compare), each a normal
job in its own sub-workdir, run in dependency order with one report at the end.

  runner     stages of an experiment config, their status, listing, running, resuming;
  configs    helpers experiment config files build their stages with;
  report     the compare stage's report (mean and spread over seeds, claims, plot);
  published  published numbers the reports put beside ours (written once, here).
"""
