import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import {
  outputName,
  queryTemplate,
  setupCell,
  shellQuote
} from '../src/template';
import type { IColumn, IDataset } from '../src/tokens';

function column(
  name: string,
  type: string,
  uses: string,
  nullable = true
): IColumn {
  return {
    name,
    type,
    uses,
    role: uses === 'link only' ? 'identifier' : 'attribute',
    values: '',
    nullable,
    description: ''
  };
}

const LUNG: IDataset = {
  name: 'lung',
  description: 'NCCTG lung cancer',
  stations: ['station-a'],
  columns: [
    column('inst', 'integer', 'statistic, filter'),
    column('age', 'integer', 'statistic, filter', false),
    column('sex', 'categorical', 'statistic, group by, filter')
  ]
};

describe('queryTemplate', () => {
  it('averages the first statistic column that is never missing', () => {
    const cell = queryTemplate(LUNG, 'lung-study', 'age by sex');

    assert.equal(
      cell,
      "%%linksight -c lung-study -o lung_result --purpose 'age by sex'\n" +
        'SELECT count(*), mean(age) FROM lung GROUP BY sex'
    );
  });

  it('averages the first statistic column when all may be missing', () => {
    const columns = LUNG.columns.map(each => ({ ...each, nullable: true }));

    const cell = queryTemplate({ ...LUNG, columns }, 'lung-study', 'x');

    assert.equal(
      cell.split('\n')[1],
      'SELECT count(*), mean(inst) FROM lung GROUP BY sex'
    );
  });

  it('leaves out what the dataset has no column for', () => {
    const ids: IDataset = {
      ...LUNG,
      name: 'covid',
      columns: [column('subject_id', 'string', 'link only')]
    };

    const cell = queryTemplate(ids, 'waiting lists');

    assert.equal(
      cell,
      "%%linksight -c 'waiting lists' -o covid_result " +
        "--purpose 'replace with why you need this query'\n" +
        'SELECT count(*) FROM covid'
    );
  });
});

describe('setupCell', () => {
  it('asks for both lines in an empty notebook', () => {
    assert.equal(setupCell([]), '%load_ext linksight_kernel\n%linksight connect');
  });

  it('asks only for what is missing', () => {
    assert.equal(
      setupCell(['import pandas\n  %load_ext linksight_kernel']),
      '%linksight connect'
    );
  });

  it('returns null when the notebook loads and connects', () => {
    assert.equal(
      setupCell(['%load_ext linksight_kernel', '%linksight connect --profile kim']),
      null
    );
  });
});

describe('outputName and shellQuote', () => {
  it('makes a Python name of any dataset name', () => {
    assert.equal(outputName('lung'), 'lung_result');
    assert.equal(outputName('2024-visits'), '_2024_visits_result');
  });

  it('quotes only what the shell would split', () => {
    assert.equal(shellQuote('lung-study'), 'lung-study');
    assert.equal(shellQuote(''), "''");
    assert.equal(shellQuote("sam's"), `'sam'"'"'s'`);
  });
});
