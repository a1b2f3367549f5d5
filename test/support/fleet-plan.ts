import { planFleet, type PlannedAttempt } from '../../demo/plan.ts';

/** The fleet an end-to-end sender sends for `tenant`; the test computes its ground truth from the same call. */
export function fleetPlan(tenant: string, specsPerCell: number, seed: number): PlannedAttempt[] {
  return planFleet({ specsPerCell, seed, tenant, specPrefix: tenant, startNs: BigInt(Date.now()) * 1_000_000n });
}
