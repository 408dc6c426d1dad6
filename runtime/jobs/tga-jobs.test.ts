import t from 'tap';
import { createNobleProvider } from '../crypto/noble.ts';
import { utf8 } from '../encoding/bytes.ts';
import { Keyring, generateKek } from '../secrets/keyring.ts';
import { MemorySecretStore } from '../secrets/store.ts';
import { SecretVault } from '../secrets/vault.ts';
import { ManualClock } from './clock.ts';
import { createScheduler } from './index.ts';
import { InProcessScheduler } from './in-process.ts';
import { TGA_JOBS, kekRotationJob, scheduleTgaJobs } from './tga-jobs.ts';

t.test('createScheduler picks the in-process adapter without Redis', async (t) => {
  const s = createScheduler();
  t.equal(s.kind, 'in-process');
  await s.stop();
});

t.test('the KEK rotation job finishes a rotation on schedule and is idempotent', async (t) => {
  const crypto = createNobleProvider();
  const store = new MemorySecretStore();
  const vault = new SecretVault(crypto, new Keyring([generateKek(crypto, 'old')]), store);
  for (let i = 0; i < 10; i++) await vault.put({ purpose: 'session', id: `s${i}` }, utf8(`state ${i}`));
  const clock = new ManualClock(0);
  const scheduler = new InProcessScheduler({ clock });
  const names = await scheduleTgaJobs(scheduler, { kekRotation: kekRotationJob(vault) }, { kekRotation: 1000 });
  t.same(names, [TGA_JOBS.kekRotation.name], 'only jobs with a handler are scheduled');
  await scheduler.start();
  await clock.advance(0); // first run: nothing to do
  t.same(vault.keyring.ids(), ['old']);
  vault.keyring.add(generateKek(crypto, 'new'), { primary: true }); // the operator's part
  await clock.advance(1000);
  t.same(Object.fromEntries(await store.countByKek()), { new: 10 });
  t.same(vault.keyring.ids(), ['new'], 'the old KEK is retired by the job');
  await clock.advance(5000); // further runs change nothing
  t.same(vault.keyring.ids(), ['new']);
  for (let i = 0; i < 10; i++) t.same(await vault.get({ purpose: 'session', id: `s${i}` }), utf8(`state ${i}`));
  await scheduler.stop();
});
