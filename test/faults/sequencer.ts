import { BaseSequencer, type TestSpecification } from 'vitest/node';

/** The usual order, except that the secret audit comes after every other file. */
export class AuditLastSequencer extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const sorted = await super.sort(files);
    const last = (f: TestSpecification): number => (/secret-audit\.test\.ts$/.test(f.moduleId) ? 1 : 0);
    return [...sorted].sort((a, b) => last(a) - last(b));
  }
}
