export * from './port';
export * from './subjects';
export { InProcessBus, type InProcessBusOptions } from './in-process-bus';
export { NatsBus, BUS_ERROR_HEADER, type NatsBusOptions } from './nats-bus';
export { openBus } from './open-bus';
