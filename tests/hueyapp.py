"""A Huey application for a stock `huey_consumer` run beside tq (see test_control):
tq's own Huey instance for the default queue, configured from TQ_* variables."""
from tq.config import load_config
from tq.runtime import Runtime

huey = Runtime(load_config()).queue("default")
