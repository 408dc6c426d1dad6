import t from 'tap';
import { auditStoreContract, hasher } from '../runtime/store/audit-store.contract.ts';
import { SimAuditStore } from './audit-store.ts';

// The simulated AuditStore passes the same contract as SQLite and PostgreSQL (on real timers
// here: a commit waits FLUSH_DELAY_MS). Its restart is a crash: uncommitted transactions are
// lost and the same disk is read again.
auditStoreContract(
  t,
  async () => {
    const store = new SimAuditStore(hasher);
    const { disk } = store;
    return {
      store,
      async restart() {
        store.crash();
        return store;
      },
      tamper: {
        setLeaf: async (index, leaf) => disk.setLeaf(index, leaf),
        deleteLeaf: async (index) => disk.deleteLeaf(index),
        moveLeaf: async (from, to) => disk.moveLeaf(from, to),
        setCheckpointNote: async (size, note) => disk.setCheckpointNote(size, note),
        wipeTree: async () => disk.wipeTree(),
      },
      cleanup: () => store.close(),
    };
  },
  { durable: true },
);
