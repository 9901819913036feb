"""Evaluation: statistics, the comparison table, task-based measures, simulated fractures, model observers and
leave-one-patient-out evaluation (the measures themselves: :mod:`xvertnet.metrics`)."""
