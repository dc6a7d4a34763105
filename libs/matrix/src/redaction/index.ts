/** The redaction algorithm of every room version (content/rooms/fragments/*-redactions.md). */
export { redactEvent, redactionKeepsContentKeys } from './redact';
