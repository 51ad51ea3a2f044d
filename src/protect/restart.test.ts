import { describe, expect, it } from 'vitest';
import { nextStep, replacementState, viewOf, type PodView } from './restart.js';

const pod = (name: string, over: Partial<PodView> = {}): PodView => ({
  name,
  uid: `${name}-uid`,
  revision: 'old',
  ready: true,
  terminating: false,
  node: '',
  ...over,
});

describe('OnDelete restart decisions', () => {
  it('deletes one stale pod at a time, highest ordinal first, only when the others are Ready', () => {
    const pods = [pod('web-0'), pod('web-1'), pod('web-2')];
    expect(nextStep(pods, 'new', 3)).toEqual({ kind: 'delete', pod: pods[2] });
    // One replaced and Ready: the next one.
    const later = [pod('web-0'), pod('web-1'), pod('web-2', { uid: 'n', revision: 'new' })];
    expect(nextStep(later, 'new', 3)).toEqual({ kind: 'delete', pod: later[1] });
  });

  it('waits while a pod is missing, unready or terminating, and is done when none is stale', () => {
    expect(nextStep([pod('web-0'), pod('web-1')], 'new', 3)).toEqual({
      kind: 'wait',
      why: '2 of 3 pod(s) exist',
    });
    expect(
      nextStep(
        [pod('web-0'), pod('web-1', { ready: false, revision: 'new' }), pod('web-2')],
        'new',
        3,
      ),
    ).toEqual({ kind: 'wait', why: 'pod web-1 is not Ready' });
    expect(nextStep([pod('web-0'), pod('web-1', { terminating: true })], 'new', 1)).toMatchObject({
      kind: 'wait',
    });
    expect(nextStep([pod('web-0', { revision: 'new' })], 'new', 1)).toEqual({ kind: 'done' });
    expect(nextStep([], 'new', 0)).toEqual({ kind: 'done' });
  });

  it('restarts a stale pod that is already down first: it costs no availability', () => {
    const pods = [pod('web-0', { ready: false }), pod('web-1'), pod('web-2')];
    expect(nextStep(pods, 'new', 3)).toEqual({ kind: 'delete', pod: pods[0] });
  });

  it('a replacement counts only on the new template and Ready, in the same slot', () => {
    const old = pod('web-1');
    expect(replacementState([old], old, 'StatefulSet', 'new')).toBe('old pod still terminating');
    expect(replacementState([], old, 'StatefulSet', 'new')).toBe('no replacement yet');
    const fresh = pod('web-1', { uid: 'u2', ready: false, revision: 'new' });
    expect(replacementState([fresh], old, 'StatefulSet', 'new')).toBe('replacement not Ready');
    expect(replacementState([{ ...fresh, revision: 'old' }], old, 'StatefulSet', 'new')).toBe(
      'replacement is on an old template',
    );
    expect(replacementState([{ ...fresh, ready: true }], old, 'StatefulSet', 'new')).toBe(true);
    // DaemonSet pods get new names; the node is the slot.
    const dsOld = pod('agent-abc', { node: 'n1' });
    const elsewhere = pod('agent-xyz', { uid: 'x', node: 'n2', revision: 'new' });
    const here = pod('agent-def', { uid: 'd', node: 'n1', revision: 'new' });
    expect(replacementState([elsewhere], dsOld, 'DaemonSet', 'new')).toBe('no replacement yet');
    expect(replacementState([elsewhere, here], dsOld, 'DaemonSet', 'new')).toBe(true);
  });

  it('reads a pod: Ready needs Running and the Ready condition; a DaemonSet pod not yet scheduled belongs to its affinity node', () => {
    const v = viewOf({
      metadata: {
        name: 'agent-x',
        uid: 'u',
        labels: { 'controller-revision-hash': 'h1' },
      },
      spec: {
        containers: [],
        affinity: {
          nodeAffinity: {
            requiredDuringSchedulingIgnoredDuringExecution: {
              nodeSelectorTerms: [
                { matchFields: [{ key: 'metadata.name', operator: 'In', values: ['n7'] }] },
              ],
            },
          },
        },
      },
      status: { phase: 'Pending', conditions: [{ type: 'Ready', status: 'True' }] },
    });
    expect(v).toEqual({
      name: 'agent-x',
      uid: 'u',
      revision: 'h1',
      ready: false,
      terminating: false,
      node: 'n7',
    });
  });
});

describe('a stuck replacement', () => {
  it('stops the OnDelete restart with the pod reason instead of waiting out --timeout', () => {
    const old = pod('web-2', { terminating: false });
    const fresh = pod('web-2', {
      uid: 'n',
      revision: 'new',
      ready: false,
      problem: 'container app: CrashLoopBackOff (last exit 3, 1 restart(s))',
    });
    expect(replacementState([fresh], old, 'StatefulSet', 'new')).toEqual({
      stuck: 'pod web-2: container app: CrashLoopBackOff (last exit 3, 1 restart(s))',
    });
  });
});
