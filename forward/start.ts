/** The forwarder a process runs when its settings name destinations (fleet start, fleet consumer). */
import type { Registry } from 'prom-client';
import type { Config } from '../config/settings.ts';
import { Forwarder, forwardRoutes } from './index.ts';

export function startForwarder(config: Config, registry: Registry, log: (message: string) => void): Forwarder | undefined {
  const routes = forwardRoutes(config);
  if (!routes) return undefined;
  const forwarder = new Forwarder({ routes, queueBytes: config.forwardQueueBytes, registry, log });
  log(`forwarding kept traces over OTLP/HTTP (${config.forwardProtocol}, ${config.forwardCompression}) to ${forwarder.describe()}`);
  return forwarder;
}
