export declare const judge: (stdout: string, strict?: boolean) => { ok: boolean; message: string }
