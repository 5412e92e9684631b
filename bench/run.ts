// `npm run bench -- NAME [options]`: builds, then runs one benchmark from the table
// below (built to dist/bench/). Benchmarks print their figures and never run in the
// test suite. Add a benchmark as ONE line here and a section in bench/README.md.

interface BenchEntry {
  summary: string;
  load: () => Promise<{ main: (argv: string[]) => Promise<number> }>;
}

const BENCHES: Record<string, BenchEntry> = {
  enqueue: { summary: 'per-message cost of mailbag enqueue / mailbag-uux vs node -e 0 and Taylor uux', load: () => import('./enqueue.js') },
  'bag-codec': { summary: 'bag size and speed per codec/level (brotli, gzip) on the bulk corpus in 8 MiB bags', load: () => import('./bag-codec.js') },
  lmtp: { summary: 'Postfix → spool per message: LMTP to mailbag lmtpd vs pipe to mailbag enqueue vs pipe to Taylor uux', load: () => import('./lmtp.js') },
  relay: { summary: 'mailbag sync over a real OpenSSH sshd vs tar | gzip -6 | ssh; sync: time, bytes on the wire, RSS, 1 GB message, cut and resume', load: () => import('./relay.js') },
  deliver: { summary: 'runner into a real Postfix: 1,000 corpus messages, sendmail per message vs smtp with pipelining', load: () => import('./deliver.js') },
};

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  const entry = name === undefined ? undefined : BENCHES[name];
  if (!entry) {
    const lines = Object.entries(BENCHES).map(([n, b]) => `  ${n.padEnd(10)} ${b.summary}`);
    process.stderr.write(`usage: npm run bench -- NAME [options]\n\nbenchmarks:\n${lines.join('\n')}\n`);
    return name === undefined || name === '--help' ? 0 : 64;
  }
  return (await entry.load()).main(rest);
}

process.exitCode = await main(process.argv.slice(2));
