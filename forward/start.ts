/**
 * The forwarder a process runs when its settings name destinations: fleet
 * start keeps the queues on disk in its data directory (it owns it alone),
 * fleet consumer in memory (replicas share no disk).
 */
import type { Registry } from 'prom-client';
import type { Config } from '../config/settings.ts';
import { Forwarder, forwardRoutes } from './index.ts';

export async function startForwarder(config: Config, registry: Registry, log: (message: string) => void, queueDir?: string): Promise<Forwarder | undefined> {
  const routes = forwardRoutes(config);
  if (!routes) return undefined;
  const forwarder = await Forwarder.open({ routes, queueBytes: config.forwardQueueBytes, registry, log, ...(queueDir && { queueDir }) });
  log(`forwarding kept traces over OTLP/HTTP (${config.forwardProtocol}, ${config.forwardCompression}) to ${forwarder.describe()}; queues ${queueDir ? `on disk in ${queueDir}` : 'in memory'}`);
  return forwarder;
}
