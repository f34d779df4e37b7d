import type { Builder } from '../../agent/src/cache/ref.js';
import { loadNode2, loadTestbed, node2Env, readTestbedEnv, type Testbed } from './testbed.js';

/**
 * One node of the testbed as an agent sees it: which engine its docker CLI
 * reaches and which builder that gives (test/testbed/up.sh: node 1 is Debian
 * 12's engine 20.10 without buildx; nodes 2 and 3 are engine 26 instances
 * whose buildx plugin a job reaches through WARMSTART_DOCKER_CLI_PLUGIN_DIRS;
 * without that setting node 2 builds with the classic builder).
 */
export interface TestNode {
  /** for test titles */
  name: string;
  builder: Builder;
  /** undefined: node 1, the default socket */
  dockerHost: string | undefined;
  /** what an agent on this node adds to testEnv's `extra` */
  env: Record<string, string>;
}

export interface TestNodes {
  node1: TestNode;
  node2: TestNode;
  node3: TestNode;
  /** node 2's engine reached without the buildx plugin: the classic builder on engine 26 */
  node2Classic: TestNode;
  /** node 3 likewise */
  node3Classic: TestNode;
}

export function testNodes(tb: Testbed = loadTestbed()): TestNodes {
  const n2 = loadNode2();
  const n3 = readTestbedEnv().env.WARMSTART_TESTBED_NODE3_DOCKER_HOST;
  if (!n3) throw new Error("testbed env lacks WARMSTART_TESTBED_NODE3_DOCKER_HOST: node 3 is not up; run 'bash test/testbed/up.sh' (npm test does)");
  return {
    node1: { name: 'node 1 (engine 20.10, classic builder)', builder: 'classic', dockerHost: undefined, env: {} },
    node2: { name: 'node 2 (engine 26, BuildKit)', builder: 'buildkit', dockerHost: n2.dockerHost, env: node2Env(tb, n2) },
    node3: { name: 'node 3 (engine 26, BuildKit)', builder: 'buildkit', dockerHost: n3, env: { ...node2Env(tb, n2), DOCKER_HOST: n3 } },
    node2Classic: {
      name: 'node 2 (engine 26, classic builder)',
      builder: 'classic',
      dockerHost: n2.dockerHost,
      env: { DOCKER_HOST: n2.dockerHost, WARMSTART_DEFAULT_IMAGE: tb.baseImage },
    },
    node3Classic: {
      name: 'node 3 (engine 26, classic builder)',
      builder: 'classic',
      dockerHost: n3,
      env: { DOCKER_HOST: n3, WARMSTART_DEFAULT_IMAGE: tb.baseImage },
    },
  };
}

/** A builder's cache made on `build` and used on `start`: two different engines with the same builder. */
export interface NodePair {
  builder: Builder;
  build: TestNode;
  start: TestNode;
}

/**
 * The cache suites' matrix: each builder, built on one node and started on
 * another of the same engine version. (The classic builders of engine 20.10
 * and 26 hash a `COPY` of the same files differently, so between them the
 * layer cache holds only up to the first feature step: docs/operations.md "Known limits".)
 */
export function crossNodePairs(nodes: TestNodes = testNodes()): NodePair[] {
  return [
    { builder: 'classic', build: nodes.node2Classic, start: nodes.node3Classic },
    { builder: 'buildkit', build: nodes.node2, start: nodes.node3 },
  ];
}
