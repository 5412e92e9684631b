// `node --import dist/bench/ssh2-esm-shim.js …`: registers bench/ssh2-esm-hooks.ts (see
// there why and when the relay bench needs it).

import { register } from 'node:module';

register('./ssh2-esm-hooks.js', import.meta.url);
