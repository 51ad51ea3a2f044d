import { describe, expect, it } from 'vitest';
import { resourcePath } from './rest.js';

describe('resource paths for direct requests', () => {
  it('builds core and group paths, namespaced or not, escaping each part', () => {
    expect(resourcePath('apps/v1', 'deployments')).toBe('/apis/apps/v1/deployments');
    expect(resourcePath('apps/v1', 'deployments', 'team-a')).toBe(
      '/apis/apps/v1/namespaces/team-a/deployments',
    );
    expect(resourcePath('apps/v1', 'statefulsets', 'team-a', 'db')).toBe(
      '/apis/apps/v1/namespaces/team-a/statefulsets/db',
    );
    expect(resourcePath('v1', 'pods', 'a', 'b')).toBe('/api/v1/namespaces/a/pods/b');
    expect(resourcePath('apps/v1', 'deployments', 'a/b', 'x?y')).toBe(
      '/apis/apps/v1/namespaces/a%2Fb/deployments/x%3Fy',
    );
  });
});
