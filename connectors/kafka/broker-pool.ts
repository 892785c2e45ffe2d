/** One {@link Broker} client per Kafka cluster, shared by the graphs of a process. */
import { randomUUID } from 'node:crypto';
import type { Broker } from '../broker.ts';
import { clusterKey } from './brokers.ts';
import { KafkaJsBroker } from './kafkajs-broker.ts';

export class BrokerPool {
  readonly defaultBrokers: readonly string[];
  private readonly clients = new Map<string, Broker>();
  private readonly create: (brokers: readonly string[]) => Broker;

  constructor(defaultBrokers: readonly string[], create?: (brokers: readonly string[]) => Broker) {
    this.defaultBrokers = defaultBrokers;
    // One member tag for every cluster: this platform's consumers of several groups line up (kafkajs-broker.ts).
    const memberTag = randomUUID();
    this.create = create ?? ((brokers) => new KafkaJsBroker({ brokers, memberTag }));
  }

  get(brokers: readonly string[] = this.defaultBrokers): Broker {
    const key = clusterKey(brokers);
    let client = this.clients.get(key);
    if (!client) {
      client = this.create(brokers);
      this.clients.set(key, client);
    }
    return client;
  }

  async close(): Promise<void> {
    const clients = [...this.clients.values()];
    this.clients.clear();
    await Promise.all(clients.map((c) => c.close()));
  }
}
