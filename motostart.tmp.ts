import { startMoto } from './testenv/moto.js';
const t = Date.now();
const m = await startMoto((l) => console.log(l));
console.log('up', m.url, Date.now() - t, 'ms');
await m.reset();
await m.stop();
console.log('stopped');
