/**
 * A separate agent process for end-to-end tests: sends a planned fleet
 * through the real instrumentation SDK and OTLP exporter (one SDK per
 * process, as in a real agent). Prints "sent N" once every span is flushed.
 *   node test/support/send-fleet.ts <endpoint> <tenant> <specsPerCell> <seed> [paceMs]
 */
import { sendFleet } from '../../demo/send.ts';
import { fleetPlan } from './fleet-plan.ts';

const [endpoint, tenant, specs, seed, pace] = process.argv.slice(2);
if (!endpoint || !tenant || !specs || !seed) throw new Error('usage: send-fleet.ts <endpoint> <tenant> <specsPerCell> <seed> [paceMs]');
const plan = fleetPlan(tenant, Number(specs), Number(seed));
await sendFleet(plan, { endpoint, tenant, ...(pace && { paceMs: Number(pace) }) });
process.stdout.write(`sent ${plan.length}\n`);
