"""The tooling's floor, shared by the tests, the load tests and benchmark, k8s/measure.py and the reliability run;
nothing here imports pytest, and nothing outside tests/ imports tests/.

server (start `python -m service` on free ports, wait until ready, stop its process group), small_model (the small
FSDD model they serve), hostile (hostile and broken uploads and the answer each must get), loadgen (the one HTTP
load generator: closed and open loops), procs (a server's processes by role, their CPU and memory, the peak-memory
sampler), machine (the machine a figure was measured on), markdown (report tables).
"""
