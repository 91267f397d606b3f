/**
 * The text of the cells that the insert-query command adds to a notebook.
 */

import type { IDataset } from './tokens';

/** The magic lines that load the client and connect to the hub. */
export const LOAD_LINE = '%load_ext linksight_kernel';
export const CONNECT_LINE = '%linksight connect';

/** The purpose placed in a new query cell, for the user to replace. */
export const PURPOSE_PLACEHOLDER = 'replace with why you need this query';

/**
 * Return a `%%linksight` cell that queries `dataset` in `collaboration`.
 *
 * The query counts the rows and averages the first column that may be a
 * statistic and is never missing (or else the first that may be a
 * statistic), grouped by the first column that may be grouped on. Either
 * part is left out when the dataset has no such column.
 */
export function queryTemplate(
  dataset: IDataset,
  collaboration: string,
  purpose: string = PURPOSE_PLACEHOLDER
): string {
  const statisticColumns = dataset.columns.filter(column =>
    column.uses.split(', ').includes('statistic')
  );
  // A column that may be missing is often a code, such as an institution
  // number, so a column present in every row is preferred.
  const statistic =
    statisticColumns.find(column => !column.nullable) ??
    statisticColumns[0];
  const group = dataset.columns.find(column =>
    column.uses.split(', ').includes('group by')
  );
  const statistics = ['count(*)'];
  if (statistic) {
    statistics.push(`mean(${statistic.name})`);
  }
  let query = `SELECT ${statistics.join(', ')} FROM ${dataset.name}`;
  if (group) {
    query += ` GROUP BY ${group.name}`;
  }
  const options = [
    `-c ${shellQuote(collaboration)}`,
    `-o ${outputName(dataset.name)}`,
    `--purpose ${shellQuote(purpose)}`
  ];
  return `%%linksight ${options.join(' ')}\n${query}`;
}

/**
 * Return the setup cell the notebook still needs before a query cell, or
 * null when its cells already load the client and connect.
 *
 * @param sources - The source of every cell of the notebook.
 */
export function setupCell(sources: string[]): string | null {
  const lines = sources.flatMap(source =>
    source.split('\n').map(line => line.trim())
  );
  const missing = [LOAD_LINE, CONNECT_LINE].filter(
    wanted => !lines.some(line => line.startsWith(wanted))
  );
  return missing.length > 0 ? missing.join('\n') : null;
}

/** Return a Python variable name for the result of a query on `dataset`. */
export function outputName(dataset: string): string {
  let name = dataset.replace(/[^A-Za-z0-9_]/g, '_');
  if (!/^[A-Za-z_]/.test(name)) {
    name = `_${name}`;
  }
  return `${name}_result`;
}

/** Quote `text` as one shell word when it needs quoting (as Python's shlex). */
export function shellQuote(text: string): string {
  if (text !== '' && /^[A-Za-z0-9_@%+=:,./-]+$/.test(text)) {
    return text;
  }
  return `'${text.replace(/'/g, `'"'"'`)}'`;
}
