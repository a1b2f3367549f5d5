import { test, expect } from 'vitest';
import { pythonVenv } from '../test/support/toolchains.ts';
test('venv', async () => { const py = await pythonVenv('probe', ['six==1.16.0']); expect(py).toContain('probe'); }, 300000);
