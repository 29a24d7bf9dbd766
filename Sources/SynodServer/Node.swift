import SynodKV
