/*
 * The heap-like page corpus of the benchmarks. It lives in the library
 * (lib/cli/heap-corpus.ts) because `tmem bench` uses it; bench/ imports it from
 * there, never the reverse.
 */
export { makeCorpus, PAGE_KINDS, type Corpus, type PageKind } from '../lib/cli/heap-corpus';
