"""XTA 2.1.1 (XTA-Webservice) support: schema loading, a zeep client, a simulator, adapter glue."""
