"""The bench's own marker, registered here so ``--strict-markers`` knows it."""


def pytest_configure(config):
    config.addinivalue_line("markers", "bench: a tiny run of the benchmark (bench/), so that it cannot rot")
