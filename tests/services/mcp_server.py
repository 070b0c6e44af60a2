"""A tiny MCP server for the tests: two tools. ``python mcp_server.py [stdio | http PORT]``."""

import sys

from mcp.server.fastmcp import FastMCP

POPULATION = {"paris": 2_100_000, "rome": 2_800_000, "oslo": 700_000}

server = FastMCP("cities", log_level="WARNING")


@server.tool()
def population(city: str) -> int:
    """Population of a city (paris, rome or oslo)."""
    key = city.strip().lower()
    if key not in POPULATION:
        raise ValueError(f"unknown city {city!r}")
    return POPULATION[key]


@server.tool()
def add(a: int, b: int) -> int:
    """The sum of two integers."""
    return a + b


if __name__ == "__main__":
    if sys.argv[1:2] == ["http"]:
        server.settings.port = int(sys.argv[2])
        server.settings.log_level = "WARNING"
        server.run(transport="streamable-http")
    else:
        server.run(transport="stdio")
