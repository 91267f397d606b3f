/**
 * The Linksight side panel for JupyterLab 4.
 *
 * The panel shows the hub connection, the user's collaborations, the
 * chosen collaboration's dataset schemas and the user's budget in it, and
 * the user's requests with their states, read again every poll interval.
 * Every call goes to the linksight_kernel server extension, which keeps
 * the hub token; the browser never sees it.
 */

import {
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ICommandPalette, Notification } from '@jupyterlab/apputils';
import { INotebookTracker, NotebookActions } from '@jupyterlab/notebook';
import { ServerConnection } from '@jupyterlab/services';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { ITranslator, nullTranslator } from '@jupyterlab/translation';
import { launchIcon } from '@jupyterlab/ui-components';

import { LinksightApi } from './api';
import { PanelModel } from './model';
import { LinksightPanel } from './panel';
import { queryTemplate, setupCell } from './template';
import { CommandIDs, PLUGIN_ID } from './tokens';

const plugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN_ID,
  description:
    'A side panel with Linksight collaborations, dataset schemas, requests and budget.',
  autoStart: true,
  optional: [
    ILayoutRestorer,
    ICommandPalette,
    INotebookTracker,
    ISettingRegistry,
    ITranslator
  ],
  activate: (
    app: JupyterFrontEnd,
    restorer: ILayoutRestorer | null,
    palette: ICommandPalette | null,
    notebooks: INotebookTracker | null,
    settingRegistry: ISettingRegistry | null,
    translator: ITranslator | null
  ) => {
    const trans = (translator ?? nullTranslator).load('jupyterlab');
    const serverSettings = ServerConnection.makeSettings();
    const api = new LinksightApi(serverSettings.baseUrl, (url, init) =>
      ServerConnection.makeRequest(url, init, serverSettings)
    );
    const model = new PanelModel({ api });
    let notifyOnFinish = true;
    let purpose = '';

    const insertQuery = (dataset: string, collaboration: string): void => {
      void app.commands.execute(CommandIDs.insertQuery, {
        dataset,
        collaboration
      });
    };
    const panel = new LinksightPanel(model, trans, insertQuery);
    panel.title.icon = launchIcon;
    app.shell.add(panel, 'left', { rank: 600 });
    restorer?.add(panel, 'linksight-panel');

    model.requestChanged.connect((_, change) => {
      if (!notifyOnFinish || !change.request.finished || change.previous === null) {
        return;
      }
      const request = change.request;
      const message = trans.__('Linksight request %1: %2', request.id, request.summary);
      if (request.state === 'completed') {
        Notification.success(message, { autoClose: 5000 });
      } else {
        Notification.warning(message, { autoClose: 8000 });
      }
    });

    app.commands.addCommand(CommandIDs.insertQuery, {
      label: args =>
        args.dataset
          ? trans.__('Insert a Linksight query cell for %1', String(args.dataset))
          : trans.__('Insert a Linksight query cell'),
      caption: trans.__(
        'Insert a %%linksight cell with a query template for the dataset chosen in the Linksight panel'
      ),
      isEnabled: () =>
        notebooks?.currentWidget != null && model.datasets.length > 0,
      execute: async args => {
        const notebook = notebooks?.currentWidget;
        if (!notebook) {
          throw new Error(
            'no notebook is open; open or create a notebook, then insert the query cell'
          );
        }
        const collaboration = String(args.collaboration ?? model.collaboration ?? '');
        const name = String(
          args.dataset ?? panel.chosenDataset ?? model.datasets[0]?.name ?? ''
        );
        const dataset = model.dataset(name);
        if (!dataset || collaboration !== model.collaboration) {
          const known = model.datasets.map(d => d.name).join(', ') || 'none';
          throw new Error(
            `dataset ${JSON.stringify(name)} not found in collaboration ` +
              `${JSON.stringify(collaboration)}; choose one of: ${known}`
          );
        }
        // A notebook opened a moment ago has no model to insert into yet.
        await notebook.context.ready;
        const content = notebook.content;
        // The query cell goes below the active cell, so only the cells up to
        // it need to load the client and connect.
        const sources: string[] = [];
        for (const cell of content.widgets.slice(0, content.activeCellIndex + 1)) {
          sources.push(cell.model.sharedModel.getSource());
        }
        const setup = setupCell(sources);
        if (setup !== null) {
          NotebookActions.insertBelow(content);
          content.activeCell?.model.sharedModel.setSource(setup);
        }
        NotebookActions.insertBelow(content);
        content.activeCell?.model.sharedModel.setSource(
          queryTemplate(dataset, collaboration, purpose || undefined)
        );
        content.mode = 'edit';
        app.shell.activateById(notebook.id);
      }
    });

    app.commands.addCommand(CommandIDs.refresh, {
      label: trans.__('Refresh the Linksight panel'),
      execute: () => model.refresh()
    });

    app.commands.addCommand(CommandIDs.open, {
      label: trans.__('Show the Linksight panel'),
      execute: () => app.shell.activateById(panel.id)
    });

    if (palette) {
      const category = trans.__('Linksight');
      for (const command of [
        CommandIDs.insertQuery,
        CommandIDs.refresh,
        CommandIDs.open
      ]) {
        palette.addItem({ command, category });
      }
    }

    const applySettings = (settings: ISettingRegistry.ISettings): void => {
      model.pollInterval = (settings.get('pollInterval').composite as number) * 1000;
      model.pauseWhenHidden = settings.get('pauseWhenHidden').composite as boolean;
      notifyOnFinish = settings.get('notifyOnFinish').composite as boolean;
      purpose = settings.get('purpose').composite as string;
    };
    if (settingRegistry) {
      settingRegistry
        .load(PLUGIN_ID)
        .then(settings => {
          applySettings(settings);
          settings.changed.connect(applySettings);
        })
        .catch(reason => {
          console.error(`linksight-panel: could not load settings: ${reason}`);
        })
        .finally(() => model.startPolling());
    } else {
      model.startPolling();
    }
    void model.refresh();
  }
};

export default plugin;
