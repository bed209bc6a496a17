"""The step ramp to saturation: closed-loop users in steps (--ramp-users, each held --ramp-step-s seconds).

Loaded beside the locustfile (`-f loadtests/locustfile.py,loadtests/ramp.py`) only by the ramp profile, because
Locust uses any LoadTestShape it finds. Throughput per step is in the `_stats_history.csv` the run writes; the
summary reports the whole run, and the step where throughput stops growing is the saturation point.
"""

from locust import LoadTestShape


class StepRamp(LoadTestShape):
    def _steps(self) -> tuple[list[int], float]:
        options = self.runner.environment.parsed_options
        users = [int(u) for u in str(getattr(options, "ramp_users", "4,8,16,32,64,128")).split(",") if u.strip()]
        return users, float(getattr(options, "ramp_step_s", 20.0))

    def tick(self):
        users, step_s = self._steps()
        step = int(self.get_run_time() // step_s)
        if step >= len(users):
            return None
        return users[step], max(users[step], 1)  # the whole step spawns within about a second
