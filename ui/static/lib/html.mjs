// Preact with htm: JSX-like templates in plain ES modules, no build step.
import { h, render, Fragment, createContext } from "../vendor/preact.mjs";
import htm from "../vendor/htm.mjs";

export { h, render, Fragment, createContext };
export { useState, useEffect, useLayoutEffect, useRef, useMemo, useCallback, useContext, useReducer } from "../vendor/preact-hooks.mjs";
export const html = htm.bind(h);
