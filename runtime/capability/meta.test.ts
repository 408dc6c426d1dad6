import t from 'tap';
import { attachCapability, takeCapability } from './meta.ts';

t.test('the token rides in params._meta and is stripped without touching the original', async (t) => {
  const params = { name: 'read_text_file', arguments: { path: 'a' }, _meta: { progressToken: 7 } };
  const withToken = attachCapability(params, 'TOKEN');
  t.same(withToken, { name: 'read_text_file', arguments: { path: 'a' }, _meta: { progressToken: 7, 'talos/capability': 'TOKEN' } });
  t.same(params._meta, { progressToken: 7 }, 'attach copies');
  const taken = takeCapability(withToken);
  t.equal(taken.token, 'TOKEN');
  t.same(taken.params, params);
  t.same((withToken._meta as Record<string, unknown>)['talos/capability'], 'TOKEN', 'take copies');
  const alone = takeCapability(attachCapability({ name: 'x' }, 'T'));
  t.same(alone, { token: 'T', params: { name: 'x' } }, 'an emptied _meta is dropped');
  t.same(takeCapability({ name: 'x' }), { token: undefined, params: { name: 'x' } });
  t.same(takeCapability(undefined), { token: undefined, params: undefined });
  t.same(takeCapability({ _meta: { 'talos/capability': 5 } }), { token: undefined, params: {} }, 'a non-string token is removed and not returned');
});
