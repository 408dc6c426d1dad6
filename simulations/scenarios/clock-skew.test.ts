import t from 'tap';
import { sweepScenarios } from '../sweep-check.ts';

sweepScenarios(t, ['clock-skew']);
