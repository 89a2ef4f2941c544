"""A chain of 20 singleton tasks: t00 -> t01 -> ... -> t19."""

from __future__ import annotations

from typing import Annotated

from reflow import Result, Workflow

wf = Workflow("bench-slurm-chain")


@wf.job()
def t00(start: int) -> int:
    return start


@wf.job()
def t01(x: Annotated[int, Result(step="t00")]) -> int:
    return x + 1


@wf.job()
def t02(x: Annotated[int, Result(step="t01")]) -> int:
    return x + 1


@wf.job()
def t03(x: Annotated[int, Result(step="t02")]) -> int:
    return x + 1


@wf.job()
def t04(x: Annotated[int, Result(step="t03")]) -> int:
    return x + 1


@wf.job()
def t05(x: Annotated[int, Result(step="t04")]) -> int:
    return x + 1


@wf.job()
def t06(x: Annotated[int, Result(step="t05")]) -> int:
    return x + 1


@wf.job()
def t07(x: Annotated[int, Result(step="t06")]) -> int:
    return x + 1


@wf.job()
def t08(x: Annotated[int, Result(step="t07")]) -> int:
    return x + 1


@wf.job()
def t09(x: Annotated[int, Result(step="t08")]) -> int:
    return x + 1


@wf.job()
def t10(x: Annotated[int, Result(step="t09")]) -> int:
    return x + 1


@wf.job()
def t11(x: Annotated[int, Result(step="t10")]) -> int:
    return x + 1


@wf.job()
def t12(x: Annotated[int, Result(step="t11")]) -> int:
    return x + 1


@wf.job()
def t13(x: Annotated[int, Result(step="t12")]) -> int:
    return x + 1


@wf.job()
def t14(x: Annotated[int, Result(step="t13")]) -> int:
    return x + 1


@wf.job()
def t15(x: Annotated[int, Result(step="t14")]) -> int:
    return x + 1


@wf.job()
def t16(x: Annotated[int, Result(step="t15")]) -> int:
    return x + 1


@wf.job()
def t17(x: Annotated[int, Result(step="t16")]) -> int:
    return x + 1


@wf.job()
def t18(x: Annotated[int, Result(step="t17")]) -> int:
    return x + 1


@wf.job()
def t19(x: Annotated[int, Result(step="t18")]) -> int:
    return x + 1


if __name__ == "__main__":
    raise SystemExit(wf.cli())
