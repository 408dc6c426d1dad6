import t from 'tap';
import { formatGrant, parseDuration, parseGrant } from './syntax.ts';

t.test('compact grants', async (t) => {
  t.same(parseGrant('tools/call:read_text_file path=repo/src/**'), {
    method: 'tools/call',
    tool: 'read_text_file',
    args: { path: { glob: 'repo/src/**' } },
  });
  t.same(parseGrant('tools/list'), { method: 'tools/list' });
  t.same(parseGrant('tools/call:* limit<=100 deep==false mode~=create,"overwrite",1 name==bob'), {
    method: 'tools/call',
    tool: '*',
    args: { limit: { max: 100 }, deep: { eq: false }, mode: { in: ['create', 'overwrite', 1] }, name: { eq: 'bob' } },
  });
  for (const g of ['tools/call:read path=a/** n<=3 m~=1,2 x=="y"', 'tools/list']) t.equal(formatGrant(parseGrant(g)), g);
  for (const bad of ['', 'tools/call path', 'tools/call path=../x', 'tools/call n<=1.5', 'tools/call a=x a=y', 'tools/call p=a**']) {
    t.throws(() => parseGrant(bad), { code: 'bad_grant_syntax' }, JSON.stringify(bad));
  }
});

t.test('durations', async (t) => {
  t.equal(parseDuration('30m'), 1800);
  t.equal(parseDuration('1h30m'), 5400);
  t.equal(parseDuration('7d'), 604_800);
  t.equal(parseDuration('45s'), 45);
  for (const bad of ['', '30', 'm', '1.5h', '0s', '367d', '1w', '-1h']) t.throws(() => parseDuration(bad), { code: 'bad_duration' }, bad);
});
