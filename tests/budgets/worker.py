"""One process of the shared-budget tests: ``python -m tests.budgets.worker URL TASKS``.

Runs ``TASKS`` concurrent calls, each reserving $0.01 and costing $0.011, against one $1.00
budget kept in the store at ``URL``; prints the calls it made and the ones refused as JSON.
"""

from __future__ import annotations

import asyncio
import json
import sys

from asynctelemetry import AsyncTracer, Budget, BudgetExceededError, ModelPricing, open_store

TABLE = {"budget-model": ModelPricing(input_per_million=1.0, output_per_million=1.0)}


async def main(url: str, tasks: int) -> None:
    made = refused = 0
    spent = 0.0
    async with open_store(url) as store:
        budget = Budget(1.0, name="shared")
        async with AsyncTracer(store=store, price_table=TABLE, budgets=[budget]) as tracer:

            async def one() -> None:
                nonlocal made, refused, spent
                try:
                    async with tracer.llm_call(model="budget-model", estimate_usd=0.01) as call:
                        await asyncio.sleep(0.002)
                        call.set_usage(input_tokens=11_000, output_tokens=0)
                    made += 1
                    spent += 0.011
                except BudgetExceededError:
                    refused += 1

            await asyncio.gather(*(one() for _ in range(tasks)))
    print(json.dumps({"made": made, "refused": refused, "spent": spent}))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
