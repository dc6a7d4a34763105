export * from './aggregations';
export * from './search-text';
export * from './report-store';
export * from './send-checks';

/** Nest injection token for the ReportStore (provided by the client-api reporting module over DOCUMENT_STORE). */
export const REPORT_STORE = Symbol('atrium:report-store');
