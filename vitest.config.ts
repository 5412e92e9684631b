import { defineConfig } from 'vitest/config';

// Integration and fault tests start real daemons (sshd, Postfix, Exim) and kill
// processes; they get generous timeouts but every wait inside them is bounded too.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: 'forks',
    reporters: ['default'],
  },
});
