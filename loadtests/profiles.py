"""The named load profiles: Locust command-line arguments for each (`python -m loadtests.run NAME`).

smoke:  seconds, a few paced users of each protocol: proves the real server answers both with zero failures (CI).
steady: two minutes well below saturation (paced users): the zero-failure, honest-latency profile.
ramp:   closed-loop users in steps up to 128, to find where throughput stops growing (saturation).
"""

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Profile:
    name: str
    args: list[str]
    files: list[str] = field(default_factory=lambda: ["loadtests/locustfile.py"])


PROFILES = {
    "smoke": Profile("smoke", ["--users", "4", "--spawn-rate", "4", "--run-time", "8s", "--pace", "0.25"]),
    "steady": Profile("steady", ["--users", "16", "--spawn-rate", "4", "--run-time", "120s", "--pace", "0.5"]),
    "ramp": Profile(
        "ramp",
        ["--ramp-users", "4,8,16,32,64,128", "--ramp-step-s", "20"],
        files=[
            "loadtests/locustfile.py",
            "loadtests/ramp.py",
        ],
    ),
}
